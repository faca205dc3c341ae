"""The notifier, the core http-request plugin: calls the requester back."""
