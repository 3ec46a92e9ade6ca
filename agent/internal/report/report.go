// Package report sends the agent's lifecycle reports to the controller over gRPC.
//
// Reporting is never allowed to get in the way of the user's command: every call is bounded by
// its context, transient failures (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED)
// are retried with capped exponential backoff, and anything else ends the attempt at once.
//
// A controller replica that is not the leader answers with the trailer leoflow-reconnect. The
// connection is then replaced before the retry: the Service in front of the controllers selects
// the leader's pod, so only a new connection can reach it.
package report

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	agentv1 "leoflow.dev/agent/gen/leoflow/agent/v1"
)

// Config says where the controller is and who is reporting.
type Config struct {
	Addr string
	// CAFile is a PEM bundle to verify the controller with; empty means the system roots.
	CAFile string
	// ServerName overrides the name checked in the controller's certificate.
	ServerName string
	// Insecure switches TLS off; for tests only.
	Insecure bool
	// TokenFile holds the projected service-account token; re-read for every request.
	TokenFile string
	Identity  *agentv1.TaskIdentity
	// RPCTimeout bounds one attempt of one call.
	RPCTimeout time.Duration
	// BackoffBase and BackoffMax shape the delay between attempts.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Warn receives one line per failed report; never nil.
	Warn func(format string, args ...any)
}

// ReconnectTrailer is the trailer a controller replica sends when the agent must dial again.
const ReconnectTrailer = "leoflow-reconnect"

// Client reports to one controller.
type Client struct {
	cfg   Config
	creds credentials.TransportCredentials
	// mu guards conn and svc: heartbeats run beside the other reports, and any of them may
	// replace the connection.
	mu   sync.Mutex
	conn *grpc.ClientConn
	svc  agentv1.AgentServiceClient
}

// Dial prepares a connection; nothing is sent until the first report.
func Dial(cfg Config) (*Client, error) {
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = 2 * time.Second
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 2 * time.Second
	}
	creds, err := transportCredentials(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, creds: creds}
	if err := c.connect(); err != nil {
		return nil, err
	}
	return c, nil
}

// connect replaces the connection; the caller holds mu, or is Dial.
func (c *Client) connect() error {
	conn, err := grpc.NewClient(c.cfg.Addr,
		grpc.WithTransportCredentials(c.creds),
		grpc.WithUserAgent("leoflow-agent/"+c.cfg.Identity.GetAgentVersion()),
		// grpc's own reconnect backoff grows to 2 minutes by default; a controller that comes
		// back must be reachable again within our own retry rhythm.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: c.cfg.BackoffBase, Multiplier: 1.6, Jitter: 0.2, MaxDelay: c.cfg.BackoffMax},
			MinConnectTimeout: c.cfg.RPCTimeout,
		}),
		grpc.WithChainUnaryInterceptor(c.reconnectWhenAsked),
	)
	if err != nil {
		return fmt.Errorf("controller address %q: %w", c.cfg.Addr, err)
	}
	// Connect now, while the command starts, so the first report does not pay for the handshake.
	conn.Connect()
	c.conn, c.svc = conn, agentv1.NewAgentServiceClient(conn)
	return nil
}

// reconnectWhenAsked replaces the connection a call was refused on with the reconnect trailer,
// once: calls that were refused on it concurrently find it already replaced.
func (c *Client) reconnectWhenAsked(ctx context.Context, method string, req, reply any,
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption,
) error {
	var trailer metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Trailer(&trailer))...)
	reason := trailer.Get(ReconnectTrailer)
	if err == nil || len(reason) == 0 {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != cc {
		return err
	}
	c.cfg.Warn("controller asked for a new connection (%s); dialling again", reason[0])
	if dialErr := c.connect(); dialErr != nil {
		c.cfg.Warn("dialling the controller again: %v", dialErr)
		return err
	}
	// Closing cancels the calls still on the old connection, and a cancelled report is not
	// retried: let them run out their own bound (only WaitStart has none, and a standby answers it).
	time.AfterFunc(c.cfg.RPCTimeout, func() { _ = cc.Close() })
	return err
}

// service is the client of the current connection.
func (c *Client) service() agentv1.AgentServiceClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.svc
}

func transportCredentials(cfg Config) (credentials.TransportCredentials, error) {
	if cfg.Insecure {
		return insecure.NewCredentials(), nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	return credentials.NewTLS(tlsCfg), nil
}

// Close releases the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Close()
}

// identity is the configured identity with a freshly read token.
func (c *Client) identity() *agentv1.TaskIdentity {
	id := &agentv1.TaskIdentity{
		PodNamespace: c.cfg.Identity.GetPodNamespace(),
		PodName:      c.cfg.Identity.GetPodName(),
		PodUid:       c.cfg.Identity.GetPodUid(),
		Container:    c.cfg.Identity.GetContainer(),
		Dag:          c.cfg.Identity.GetDag(),
		Run:          c.cfg.Identity.GetRun(),
		Task:         c.cfg.Identity.GetTask(),
		Attempt:      c.cfg.Identity.GetAttempt(),
		AgentVersion: c.cfg.Identity.GetAgentVersion(),
	}
	if c.cfg.TokenFile != "" {
		token, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil {
			c.cfg.Warn("token file: %v; reporting without a token", err)
		}
		id.Token = strings.TrimSpace(string(token))
	}
	return id
}

// WaitStart blocks until the controller answers with a decision or ctx ends. The controller may
// hold each call open indefinitely, so attempts have no timeout of their own.
func (c *Client) WaitStart(ctx context.Context) (*agentv1.WaitStartResponse, error) {
	var resp *agentv1.WaitStartResponse
	err := c.retry(ctx, "WaitStart", 0, func(ctx context.Context) error {
		r, err := c.service().WaitStart(ctx, &agentv1.WaitStartRequest{Identity: c.identity()})
		if err == nil && r.GetDecision() == agentv1.WaitStartResponse_DECISION_UNSPECIFIED {
			return status.Error(codes.Internal, "controller answered WaitStart without a decision")
		}
		resp = r
		return err
	})
	return resp, err
}

// Started reports that the command is about to be executed.
func (c *Client) Started(ctx context.Context, command []string, at time.Time) error {
	return c.retry(ctx, "Started", c.cfg.RPCTimeout, func(ctx context.Context) error {
		_, err := c.service().Started(ctx, &agentv1.StartedRequest{
			Identity: c.identity(), Command: command, StartTimeUnixMs: at.UnixMilli(),
		})
		return err
	})
}

// Heartbeat makes one attempt; a missed heartbeat is replaced by the next one.
func (c *Client) Heartbeat(ctx context.Context, elapsed time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RPCTimeout)
	defer cancel()
	_, err := c.service().Heartbeat(ctx, &agentv1.HeartbeatRequest{Identity: c.identity(), ElapsedMs: elapsed.Milliseconds()})
	return err
}

// Terminating reports that the agent received sig and forwarded it.
func (c *Client) Terminating(ctx context.Context, sig int) error {
	return c.retry(ctx, "Terminating", c.cfg.RPCTimeout, func(ctx context.Context) error {
		_, err := c.service().Terminating(ctx, &agentv1.TerminatingRequest{Identity: c.identity(), Signal: int32(sig)})
		return err
	})
}

// Finished reports the outcome and returns once the controller acknowledged it or ctx ended.
func (c *Client) Finished(ctx context.Context, req *agentv1.FinishedRequest) error {
	return c.retry(ctx, "Finished", c.cfg.RPCTimeout, func(ctx context.Context) error {
		req.Identity = c.identity()
		_, err := c.service().Finished(ctx, req)
		return err
	})
}

// Retryable says whether a failed call may succeed when tried again.
func Retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	default:
		return false
	}
}

// retry calls call until it succeeds, fails for good, or ctx ends; attempt > 0 bounds each try.
func (c *Client) retry(ctx context.Context, name string, attempt time.Duration, call func(context.Context) error) error {
	delay := c.cfg.BackoffBase
	for tries := 1; ; tries++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if attempt > 0 {
			actx, cancel = context.WithTimeout(ctx, attempt)
		}
		err := call(actx)
		cancel()
		if err == nil {
			return nil
		}
		if !Retryable(err) {
			c.cfg.Warn("%s report refused by the controller (%s), not retrying: %s",
				name, status.Code(err), status.Convert(err).Message())
			return err
		}
		if ctx.Err() != nil {
			c.cfg.Warn("%s report not acknowledged after %d attempts, giving up: %s", name, tries, status.Convert(err).Message())
			return errors.Join(ctx.Err(), err)
		}
		// Full jitter keeps a fleet of agents from hammering a controller that just came back.
		wait := time.Duration(rand.Int64N(int64(delay))) + delay/2
		select {
		case <-ctx.Done():
			c.cfg.Warn("%s report not acknowledged after %d attempts, giving up: %s", name, tries, status.Convert(err).Message())
			return errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
		delay = min(delay*2, c.cfg.BackoffMax)
	}
}
