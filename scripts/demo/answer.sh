#!/bin/sh
# A demo backend's reply to one connection: every line it receives, back
# with NAME in front. socat runs one per connection.
exec sed -u "s/^/$1 /"
