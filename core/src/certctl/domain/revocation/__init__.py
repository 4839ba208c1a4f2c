"""Revocation of managed certificates and the CRLs published for issuers that sign them."""
