#!/usr/bin/python
# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgrepl.streaming.clone_wait: the action (plugins/action/clone_wait.py) loops and prints on the controller; this
module is its look at the host (the progress file of a running standby_clone)."""

from __future__ import annotations

DOCUMENTATION = r'''
---
module: clone_wait
short_description: Wait for a copy running in the background, printing its progress
version_added: 0.1.0
author: pgrepl maintainers (@pgrepl)
description:
  - Waits for an asynchronous task (C(async), C(poll=0)) that runs M(pgrepl.streaming.standby_clone) (or
    M(pgrepl.streaming.node_apply) with its C(clone) item) and prints, every O(interval) seconds, a line such as
    C(db2 - 42% of 1.2 GB, 38.0 MB/s, about 20 s left) from the progress file the copy keeps beside O(data_dir)
    (C(.<name>.pgrepl-progress)). When the task ends it returns that task's result as its own (failed when it
    failed, with its message) and removes the task's job file.
  - Each round is one short module run on the host, which returns as soon as the task ends, so the wait adds
    well under a second to the copy.
  - The standby role uses it for copies of primaries of at least C(pgrepl_clone_progress_min_size) bytes.
  - The lines go to Ansible's display, so the default callback shows them as they come; they are left out when
    the stdout callback writes one JSON document. They are also in RV(progress).
options:
  jid:
    description: The C(ansible_job_id) of the asynchronous task.
    type: str
    required: true
  data_dir:
    description: The data directory the copy writes (the O(pgrepl.streaming.standby_clone#module:data_dir) of it).
    type: path
    required: true
  interval:
    description: Seconds between two progress lines, 1 to 25 (each look costs a module run on the host).
    type: int
    default: 15
  results_file:
    description:
      - Leave it out - the action sets it for its look on the host, to the job file of O(jid) in the become
        user's C(async_dir) (what C(async_status) reads).
    type: path
attributes:
  check_mode:
    description: Nothing is changed; in check mode no task runs in the background, so the action skips.
    support: full
  diff_mode:
    description: Nothing is changed by this module itself.
    support: none
  action:
    description: Runs on the controller and runs its look (this module) and C(async_status) on the host.
    support: full
notes:
  - Run it with the same C(become) as the task in the background (its job file lives in that user's
    C(~/.ansible_async)).
seealso:
  - module: pgrepl.streaming.standby_clone
'''

EXAMPLES = r'''
- name: Copy the primary in the background
  pgrepl.streaming.standby_clone:
    data_dir: /var/lib/postgresql/15/main
    primary_host: db1.example.com
    passfile: /var/lib/postgresql/.pgpass
    slot_name: db2
    max_rate: 100M
    timeout: 14400
  become: true
  async: 15000
  poll: 0
  register: pgrepl_clone_job

- name: Wait for it, printing its progress every 15 seconds
  pgrepl.streaming.clone_wait:
    jid: "{{ pgrepl_clone_job.ansible_job_id }}"
    data_dir: /var/lib/postgresql/15/main
  become: true
'''

RETURN = r'''
progress:
  description: The progress lines printed while waiting.
  returned: always
  type: list
  elements: str
  sample: ["db2 - 42% of 1.2 GB, 38.0 MB/s, about 20 s left"]
report:
  description: What the module's look returns - the latest progress file's content (C(percent), C(bytes_done),
    C(bytes_total), C(rate_bytes_per_second), C(eta_seconds), C(phase), C(max_rate)), or null.
  returned: by the module's look on the host
  type: dict
ended:
  description: Whether the progress file went away during the look (the copy ended).
  returned: by the module's look on the host
  type: bool
job:
  description: The background task's own result once it ended (its job file is then removed), else null.
  returned: by the module's look on the host
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgrepl.streaming.plugins.module_utils._progress import CLONE_LOOK_SPEC, watch_copy


def main() -> None:
    # The look on the host that the action runs every interval (the action validates the user's options).
    module = AnsibleModule(argument_spec=CLONE_LOOK_SPEC, supports_check_mode=True)
    if not module.params["results_file"]:
        module.fail_json(msg="results_file: not given; run this module through its action (the task "
                             "pgrepl.streaming.clone_wait), which finds the job file of jid")
    report, ended, job = watch_copy(module.params["data_dir"], module.params["results_file"],
                                    float(module.params["interval"]))
    module.exit_json(changed=False, report=report, ended=ended, job=job)


if __name__ == '__main__':
    main()
