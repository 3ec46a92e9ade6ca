"""The local development cluster: real Kubernetes components as processes on 127.0.0.1.

``leoflow dev up`` builds (once, cached per version) and starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, KWOK simulated nodes and a real kubelet + containerd
node. Nothing here talks to anything but this machine.
"""
