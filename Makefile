# The two commands that matter: `make demo` (a replicated cluster on this machine) and `make test` (everything).
.PHONY: demo demo-clean bench bench-day2 faults test deps lint sanity units integration images install-check molecule day2 clean

demo: ## a primary and two streaming standbys on containers of this machine, then the status table
	bash scripts/demo.sh

demo-clean: ## remove the demo containers and network
	bash scripts/demo.sh clean

bench: ## site playbook vs the guides' manual commands on fresh containers (1+2, 1+1, 1+4): docs/performance.md
	bash scripts/bench.sh

bench-day2: ## switchover and failover playbooks vs the raw manual procedure under the write ledger: gaps, lost commits
	bash scripts/bench-day2.sh

faults: deps ## fault-injection bench: every fault and task boundary of the day-2 operations, re-run; .build/faults/table.md
	bash scripts/faults.sh full

test: ## set up everything, then run the whole suite (what CI runs)
	bash scripts/test.sh

deps: ## install OS packages, the pinned venv and ansible-test's offline pip
	bash scripts/test.sh deps

lint: deps ## ruff + ansible-lint (production profile)
	bash scripts/test.sh lint

sanity: deps ## ansible-test sanity, offline, from a real ansible_collections copy
	bash scripts/test.sh sanity

units: deps ## pure-logic unit tests
	bash scripts/test.sh units

integration: deps ## modules through Ansible against a real PostgreSQL primary and standby
	bash scripts/test.sh integration

images: deps ## build the test host images (Debian packages only, cached by recipe hash)
	bash scripts/test.sh images

install-check: deps ## the install step on a clean Debian container installs every command the scripts and tests call
	bash scripts/test.sh install

molecule: deps ## role scenarios on systemd containers (extensions/molecule/)
	bash scripts/test.sh images molecule

day2: deps ## day-2 playbooks chained under the write ledger (PG 15 and 17) on systemd containers (tests/day2/)
	bash scripts/test.sh day2

clean: ## remove the venv and build copies (not the test images)
	rm -rf .venv .build tests/output
