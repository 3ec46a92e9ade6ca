"""The admission webhook: an aiohttp HTTPS server answering AdmissionReview v1 for pods.

``reviews`` reads and writes the wire format, ``serving`` is the aiohttp application (it calls the
pure :mod:`leoflow.agent_inject`), ``tls`` reloads the serving certificate when its files change,
``metrics`` is what Prometheus scrapes. The webhook never imports the controller.
"""
