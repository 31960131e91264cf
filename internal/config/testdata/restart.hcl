run "ops" {}

# Defaults: restart = "on-failure", max_restarts = 5.
agent "plain" {
  command = ["claude"]
}

agent "crashy" {
  command      = ["sh", "-c", "exit 3"]
  restart      = "on-failure"
  max_restarts = 0
}

agent "daemon" {
  command      = ["sleep", "60"]
  restart      = "always"
  max_restarts = 1000
}

agent "once" {
  command = ["true"]
  restart = "never"
}

agent "watched" {
  count   = 2
  command = ["cat"]
  checkin {
    after_idle = "10m"
    message    = "You have been quiet for 10 minutes: are you stuck?"
  }
  checkin {
    after_idle = "1.5s"
    message    = "instance ${count.index}"
  }
  checkin {
    every   = "1h"
    message = "hourly"
  }
}
