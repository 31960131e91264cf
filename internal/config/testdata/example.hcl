variable "agent_command" {
  default = ["sh", "-c", "sleep 1000"]
}

run "demo" {
  engine            = "docker"
  require_rootless  = false
  accept_unenforced = ["memory", "pids", "memory"]
}

agent "alice" {
  image    = "localhost/runner-agent:latest"
  command  = ["sh", "-c", "while :; do date; sleep 5; done"]
  env      = { GREETING = "hello" }
  user     = "1000:1000"
  memory   = "256MiB"
  cpus     = 0.5
  pids     = 128
  network  = "none"
  workdir  = "/workspace"
  tmp_size = "32MiB"
  count    = 3

  mount {
    source    = "./work"
    target    = "/workspace"
    read_only = true
  }
}

agent "bob" {
  command   = var.agent_command
  network   = "bridge"
  home_size = "1GB"
  memory    = 1073741824

  mount {
    source    = "work-link"
    target    = "/home/agent/project"
    read_only = false
  }
  mount {
    source = "prompt.txt"
    target = "/tmp/prompt.txt"
  }
}
