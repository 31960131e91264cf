# HOME is $TMP/home in these tests.
run "secrets" {}

agent "a" {
  command = ["true"]

  # Inside the home directory but not a secret: no acknowledgement needed.
  mount {
    source = "./home/project"
    target = "/m/project"
  }
  mount {
    source          = "./home/.ssh"
    target          = "/m/ssh"
    allow_sensitive = true
  }
  mount {
    source          = "./keys"
    target          = "/m/keys"
    allow_sensitive = true
  }
  mount {
    source          = "./work"
    target          = "/m/work"
    allow_sensitive = true
  }
}
