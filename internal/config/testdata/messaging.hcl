run "team" {}

agent "pm" {
  command = ["claude"]
  send_to = ["eng-*", "qa", "operator"]
  checkin {
    every   = "30m"
    message = "Status check: what did you finish, what is next, what blocks you?"
  }
  checkin {
    every   = "1.5m"
    message = <<-EOT
      Quick ping: anything blocked?
    EOT
  }
  brief = file("prompt.txt")
}

# Each engineer may message pm and the other engineers; a glob does not
# match the agent itself.
agent "eng" {
  count   = 3
  command = ["claude"]
  send_to = ["pm", "eng-*"]
  checkin {
    every   = "${10 * (count.index + 1)}m"
    message = "Engineer ${count.index + 1}: report to pm."
  }
  brief = "You are engineer ${count.index + 1} of 3."
}

# Listing its own name lets an agent message itself.
agent "qa" {
  command = ["true"]
  send_to = ["qa", "pm", "e?g-[12]"]
  checkin {
    every   = "1s"
    message = "tick"
  }
  checkin {
    every   = "168h"
    message = "weekly"
  }
}

# No send_to: may message nobody. A null brief is no brief.
agent "loner" {
  command = ["true"]
  send_to = []
  brief   = null
}
