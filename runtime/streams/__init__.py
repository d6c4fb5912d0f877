"""Server-Sent Events over the log: one Kafka consumer (no group) per stream, a bounded
buffer between it and the HTTP response, resumable ids, access re-checked while open."""
