run "limits" {}

agent "a" {
  command   = ["true"]
  memory    = "256mb"
  cpus      = 0
  pids      = 8
  tmp_size  = "0"
  home_size = "100KiB"
}

agent "b" {
  command   = ["true"]
  memory    = "4MiB"
  cpus      = 65
  pids      = 1.5
  tmp_size  = "1.5GiB"
  home_size = "lots"
}

agent "c" {
  command = ["true"]
  memory  = "99999999999GiB"
  cpus    = 0.001
  pids    = 40000
}

agent "d" {
  command = ["true"]
  memory  = "6MiB"
  cpus    = 64
  pids    = 32768
}
