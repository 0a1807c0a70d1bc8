"""The destination: the Kubernetes cluster where Argo CD runs, and the cluster Secrets we write there.

`connect` builds a store for a configured destination (EKS or a kubeconfig); `secrets` is the store;
`http` the one place its requests and answers pass through; `errors` chooses our error from a status.
Nothing is imported here: the HTTP client is a third of a cold start, and only a run that writes needs it.
"""
