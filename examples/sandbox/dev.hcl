# A throwaway, locked-down dev sandbox: an interactive shell with the
# workspace mounted read-write. Nothing else of your machine is reachable.
#
#   chmod 0777 examples/sandbox/workspace      # the agent's own uid (40000-44095) must write it
#   runner apply  examples/sandbox/dev.hcl
#   runner attach examples/sandbox/dev.hcl dev --write     # type; Ctrl-b d detaches
#   runner destroy examples/sandbox/dev.hcl

run "sandbox" {}

agent "dev" {
  command = ["sh"]
  memory  = "1GiB"
  cpus    = 1
  pids    = 512
  workdir = "/workspace"
  mount {
    source    = "./workspace"
    target    = "/workspace"
    read_only = false
  }
}
