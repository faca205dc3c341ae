"""Sources that feed NATS and Kubernetes events to the functions over HTTP."""
