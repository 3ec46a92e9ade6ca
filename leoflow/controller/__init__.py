"""The DAG engine. Pure decision modules (``podstatus``, ``podnames``, ``podspec``, ``planner``,
``apierrors``) are kept free of Kubernetes client imports so tests can drive them exhaustively;
the adapters that talk to the API server and the agents sit around them.
"""
