// Command webhookfloor is the benchmark's lower bound for any admission webhook on this machine:
// Go's net/http over TLS, which the API server's client reaches with HTTP/2 (one multiplexed
// connection, no handshake per burst), answering every review "allowed" without a patch.
// bench/webhook/run.py runs it in the same run as `leoflow webhook serve` and an aiohttp floor,
// so the latency it adds is what calling a webhook costs here before the webhook does any work.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"strconv"
)

type review struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    struct {
		UID    string `json:"uid"`
		DryRun bool   `json:"dryRun"`
	} `json:"request"`
}

type response struct {
	UID      string   `json:"uid"`
	Allowed  bool     `json:"allowed"`
	Warnings []string `json:"warnings,omitempty"`
}

type answer struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Response   response `json:"response"`
}

func allow(w http.ResponseWriter, r *http.Request) {
	var in review
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, "malformed AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	out := answer{APIVersion: in.APIVersion, Kind: in.Kind, Response: response{UID: in.Request.UID, Allowed: true}}
	// The benchmark probes with a dry run until the API server calls this webhook; a warning is
	// the only trace a patch-less answer leaves, and real (non-dry-run) reviews never carry it.
	if in.Request.DryRun {
		out.Response.Warnings = []string{"bench floor: go-http2-noop"}
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		log.Printf("writing the answer failed: %v", err)
	}
}

func main() {
	cert := flag.String("cert-file", "", "serving certificate PEM")
	key := flag.String("key-file", "", "its private key PEM")
	port := flag.Int("port", 0, "port on 127.0.0.1")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /mutate-pods", allow)
	server := &http.Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)), Handler: mux}
	log.Fatal(server.ListenAndServeTLS(*cert, *key))
}
