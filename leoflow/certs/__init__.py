"""TLS material for the webhook: a CA, a serving certificate, and keeping them fresh in-cluster.

``authority`` issues certificates, ``rotation`` decides (purely) when to renew and what the
``caBundle`` must hold, ``syncing`` is the thin loop that writes the decision to a Secret and the
MutatingWebhookConfiguration. cert-manager is the documented alternative (docs/webhook.md).
"""
