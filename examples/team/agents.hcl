# A team the way people ran Tmux-Orchestrator: an orchestrator, a project
# manager and two engineers, each in its own locked-down container.
#
# Offline, with the default image and a stand-in command (cat echoes every
# message it is given, so you can watch the team talk):
#   runner apply examples/team/agents.hcl
#   runner send  examples/team/agents.hcl pm "kick-off: plan the login page"
#   runner watch examples/team/agents.hcl
#   runner fetch examples/team/agents.hcl          # the engineers' commits -> refs/runner/team/eng-N/*
#   runner diff  examples/team/agents.hcl eng-1 --stat
#
# For real, with an image that has Claude Code (or codex, aider, ...):
#   runner apply examples/team/agents.hcl \
#     -var image=localhost/my-agent:latest -var 'agent_command=["claude"]'
#
# The containers stay on network "none": the only way out is the run's
# egress proxy, and egress_default lets every agent reach its model API and
# nothing else. Another tool's API goes in the list too (codex:
# "api.openai.com"). See what an agent tried and was refused, with the line
# to paste for each, with:
#   runner egress examples/team/agents.hcl

variable "agent_command" {
  type    = list(string)
  default = ["cat"]
}

variable "image" {
  default = "localhost/runner-agent:latest"
}

run "team" {
  egress_default = ["api.anthropic.com"]
}

agent "orchestrator" {
  image   = var.image
  command = var.agent_command
  send_to = ["pm", "operator"]
  brief   = file("briefs/orchestrator.md")
  checkin {
    every   = "1h"
    message = "Hourly review: is the team on track? Tell the operator what needs a decision."
  }
}

agent "pm" {
  image   = var.image
  command = var.agent_command
  send_to = ["orchestrator", "eng-*"]
  brief   = file("briefs/pm.md")
  checkin {
    every   = "30m"
    message = "Status check: what did the engineers finish, what is next, what blocks them?"
  }
}

agent "eng" {
  count   = 2
  image   = var.image
  command = var.agent_command
  send_to = ["pm"]
  brief   = format(file("briefs/eng.md"), "eng-${count.index + 1}")
  memory  = "1GiB"
  cpus    = 1
  workspace {
    repo = "../.." # this repository: each engineer gets a private clone on branch runner/team/eng-N
    path = "/workspace"
  }
}
