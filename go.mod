module github.com/rmqproxy/rmqproxy

go 1.26.8
