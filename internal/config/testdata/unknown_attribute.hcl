run "typos" {
  engin = "docker"
}

agent "a" {
  command = ["true"]
  memroy  = "1GiB"
  privileged = true

  mount {
    sourse = "./work"
    target = "/workspace"
  }
}
