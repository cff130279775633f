"""The CDS Hooks service: its endpoints and route table (``routes``), what they share
(``state``) and errors as OperationOutcomes (``outcome``). Assembled with the web pages into
one app by ``legspasm.server``."""
