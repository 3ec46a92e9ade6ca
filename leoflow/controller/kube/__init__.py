"""The controller's Kubernetes I/O: informers that read, one writer that writes, a Lease for HA.

Everything here speaks raw JSON dicts over kubernetes_asyncio's HTTP client rather than its
generated models: one code path serves pods and custom resources alike, and decoding into models
is the single largest CPU cost of a Python controller at thousands of pods.
"""
