"""The public edge: HTTPS API, tenants and keys, and the endpoint agents dial into."""
