# dibao: two commands to know, `make up` and `make test`. See README.md.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
ROLE ?= intake_clerk
REGION ?= 620102
SUBJECT ?= dev-user
ARGS ?=

.PHONY: up down reset status test lint token install logs

up:        ## install what is missing, start PostgreSQL, Kafka, the five services and an audit witness, load demo data
	@bash deploy/stack.sh up

down:      ## stop what `make up` started
	@bash deploy/stack.sh down

reset:     ## stop, then delete this checkout's databases and broker data (the next `make up` starts empty)
	@bash deploy/stack.sh reset

status:    ## what is running
	@bash deploy/stack.sh status

test:      ## the whole suite against an isolated stack (ARGS=... passes pytest arguments)
	@bash deploy/test.sh $(ARGS)

lint:      ## ruff, mypy --strict, shellcheck, buf lint, generated code up to date
	@bash deploy/lint.sh

token:     ## a development bearer token: make token ROLE=intake_clerk REGION=620102 [SUBJECT=dev-user]
	@bash deploy/token.sh "$(ROLE)" "$(REGION)" "$(SUBJECT)"

install:   ## only install tools and packages
	@bash deploy/bootstrap.sh all
