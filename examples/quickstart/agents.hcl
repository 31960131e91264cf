# Two agents that run offline with the default image (`runner image build`).
# Swap the command for ["claude"], ["codex"] or ["aider"] in an image that
# has them.

run "quickstart" {
  engine = "docker"
}

agent "alice" {
  command = ["sh", "-c", "echo \"alice says $GREETING\"; while :; do date; sleep 5; done"]
  env     = { GREETING = "hello" }
  memory  = "128MiB"
  cpus    = 0.5
  pids    = 64
}

agent "bob" {
  command = ["sh", "-c", "cd /workspace && ls -la && git --version && sleep infinity"]
  memory  = "128MiB"
  mount {
    source    = "."          # this directory, read-only
    target    = "/workspace"
    read_only = true
  }
}
