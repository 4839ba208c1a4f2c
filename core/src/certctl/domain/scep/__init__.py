"""SCEP server (RFC 8894): enrolment of devices through the job engine."""
