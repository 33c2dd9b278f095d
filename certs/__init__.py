"""Key material, pure crypto on `cryptography` (no mitmproxy, no aiosmtpd).

ca          the interception CA: create, load, issue server certificates, mitmproxy confdir
rotation    staged CA rotation: next → current → previous
load        reading certificates from PEM, DER, PKCS#7 and signed mail
parties     third parties' certificates: checks, store, status, expiry
smime       S/MIME envelope (AES-256) and whether a party can be encrypted to
archive     AES-256 zip files and passwords
errors      the exception hierarchy
"""
