assert_eq "$(slugify 'Hello, World!')" "hello-world" "slugify punctuation"
assert_eq "$(slugify '  Many   spaces  ')" "many-spaces" "slugify spaces"
assert_eq "$(slugify 'runner-2.0')" "runner-2-0" "slugify digits"
