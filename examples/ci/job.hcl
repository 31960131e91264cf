# CI mode: run a project's checks in throwaway, locked-down containers.
#
#   bin/runner run examples/ci/job.hcl                 # text; exit status of the first failing agent
#   bin/runner run examples/ci/job.hcl -o junit        # JUnit XML on stdout
#   bin/runner run examples/ci/job.hcl --junit-file out/junit.xml --timeout 5m
#
# `runner run` applies this run, waits until every agent's command has
# exited, prints each agent's output (every line prefixed "AGENT | "),
# removes the containers, relay and state, and exits 0 only if every command
# exited 0. See README.md next to this file.

variable "image" {
  description = "An image with your project's toolchain; the default one has dash, coreutils, grep, sed and git."
  default     = "localhost/runner-agent:latest"
}

variable "accept_unenforced" {
  description = "Set to [\"memory\", \"cpus\", \"pids\"] on an engine that cannot enforce limits (rootless Docker on cgroup v1)."
  type        = list(string)
  default     = []
}

# The run's name is the job's identity: a second `runner run` of this file
# while one is in progress (or while the run is applied) is refused.
run "ci-example" {
  accept_unenforced = var.accept_unenforced
}

# The test suite: the project read-only, reports into out/.
agent "tests" {
  image   = var.image
  command = ["sh", "/workspace/run-tests.sh"]
  env     = { REPORT_DIR = "/out" }
  memory  = "128MiB"
  pids    = 64
  network = "none"
  mount {
    source    = "project" # relative to this file
    target    = "/workspace"
    read_only = true
  }
  mount {
    source    = "out" # must be writable by the agent's own uid: see README.md
    target    = "/out"
    read_only = false
  }
}

# A second check, in parallel, in its own container.
agent "lint" {
  image   = var.image
  command = ["sh", "/workspace/lint.sh"]
  memory  = "64MiB"
  pids    = 32
  network = "none"
  mount {
    source    = "project"
    target    = "/workspace"
    read_only = true
  }
}
