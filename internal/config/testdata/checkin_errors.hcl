run "team" {}

agent "pm" {
  command = ["true"]
  checkin {
    every   = "30"
    message = "no unit"
  }
  checkin {
    every   = 30
    message = "a number"
  }
  checkin {
    every   = "soon"
    message = "not a duration"
  }
  checkin {
    every   = "500ms"
    message = "below the floor"
  }
  checkin {
    every   = "0s"
    message = "zero"
  }
  checkin {
    every   = "-1m"
    message = "negative"
  }
  checkin {
    every   = "168h1s"
    message = "over a week"
  }
  checkin {
    every   = "1m"
    message = ""
  }
  checkin {
    every   = "1m"
    message = "a\u0000b"
  }
  checkin {
    every   = "1m"
    message = file("long.txt")
  }
  checkin {
    every = "1m"
  }
  checkin {
    message = "no interval"
  }
  checkin {
    every   = "1m"
    message = "hi"
    to      = "eng"
  }
  checkin "named" {
    every   = "1m"
    message = "hi"
  }
}

agent "eng" {
  count   = 2
  command = ["true"]
  checkin {
    every   = "${count.index}s"
    message = "instance ${count.index}"
  }
}

agent "idle" {
  command = ["true"]
  checkin {
    every      = "1m"
    after_idle = "5m"
    message    = "both triggers"
  }
  checkin {
    after_idle = "500ms"
    message    = "below the floor"
  }
  checkin {
    after_idle = "ten minutes"
    message    = "not a duration"
  }
  checkin {
    after_idle = "169h"
    message    = "over a week"
  }
  checkin {
    after_idle = null
    message    = "null"
  }
}

agent "idlers" {
  count   = 2
  command = ["true"]
  checkin {
    message = "no trigger, reported once for the block"
  }
}
