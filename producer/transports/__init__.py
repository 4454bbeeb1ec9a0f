"""Transports besides the webhook: the Cloudflare Queues pull consumer and the bucket poller."""
