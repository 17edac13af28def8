;; A component that exports nothing: neither a Cairn task nor a command.
(component)
