"""The health department's web service: bureaus, auditors, the public and the roster API."""
