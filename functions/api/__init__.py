"""The GraphQL API: step 1.1 and 1.2 of the flow."""
