"""Installing Leoflow in a cluster: the manifests in ``manifests/``, rendered without kustomize.

``manifests`` reads the kustomize base (the restricted form it is written in) into objects in the
order ``kubectl kustomize`` emits them; ``rendering`` retargets them to another namespace and fills
in freshly generated certificates for ``leoflow install --print``; ``controller_image`` builds the
controller/webhook image for the dev cluster, where there is no Docker.
"""
