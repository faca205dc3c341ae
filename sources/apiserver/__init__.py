"""A local stand-in for Knative's ApiServerSource: Job changes as CloudEvents.

In a cluster, an ApiServerSource in Resource mode watches the catalog's
registration Jobs and POSTs each change to the catalog. Without Knative this
program does the same: it lists and watches the labelled Jobs with the
kubernetes client and POSTs the CloudEvents an ApiServerSource would send.
"""
