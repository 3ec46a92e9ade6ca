"""TLS material for the webhook and the controller's agent endpoint: CAs, serving certificates,
and keeping them fresh in-cluster.

``authority`` issues certificates, ``rotation`` decides (purely) when to renew and what clients
must trust meanwhile, ``syncing`` is the thin loop that writes the decisions to the Secrets and
the MutatingWebhookConfiguration, ``servingfiles`` is how a server reads and reloads the pair it
serves, ``pemfiles`` writes a pair to files without a moment in which others can read the key.
cert-manager is the documented alternative (docs/install.md).
"""
