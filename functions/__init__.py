"""The deployable functions, one folder each, in the order of the flow."""
