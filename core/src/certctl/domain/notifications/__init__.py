"""The durable notification queue, its routing, expiry alerts and the notifications API."""
