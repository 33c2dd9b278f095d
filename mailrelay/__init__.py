"""The SMTP relay: accept (aiosmtpd), spool durably, judge per recipient group, deliver."""
