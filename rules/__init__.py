"""rules — what is sensitive and what may go where.

Pure: no mitmproxy, no aiosmtpd. Detectors, content extraction, normalisation
and the scan engine live here, so every door (proxy, relay, CLI) reaches the
same findings for the same content.
"""
