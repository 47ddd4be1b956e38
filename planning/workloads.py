"""Facts about the workloads that more than one part of the program must agree on: NIM's uid (the NIM pods run as
it, the EFS access points of the model cache map every client to it) and the size of Open WebUI's data volume (the
component requests it, the cost estimate prices it). Plain data; scheduling facts live in planning/scheduling.py."""

# NIM containers run as uid/gid 1000 (NVIDIA NIM for LLMs docs; FACTS.md); the EFS access points map clients to it.
NIM_UID = 1000
# Open WebUI's volume: accounts, chats, settings and its embedding model (gp3, GiB).
OPEN_WEBUI_DATA_GB = 10
