"""The attach/detach engine: transactional file changes, the drop-ins, the attached state, and
telling the service manager (enable/start, a daemon-reload only when needed)."""
