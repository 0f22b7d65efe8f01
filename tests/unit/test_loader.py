"""The runbook loader: every problem names its file, 1-based line and field, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.actions.registry import builtin_actions
from remediator.actions.scale import ScaleParams
from remediator.authoring.facts import sample_instance
from remediator.errors import PlanError, RunbookError
from remediator.pipeline.plan import plan
from remediator.runbooks.loader import RunbookSet, git_commit, load_dir, load_file
from tests.gitrepo import git

ACTIONS = builtin_actions()

VALID = """\
name: web-restart
version: 1
owner: platform
description: Restart a crash-looping web deployment.
match:
  - alertname="WebDown"
  - severity=~"warning|critical"
target:
  kind: Deployment
  namespace: "{{ labels.namespace }}"
  name: "{{ labels.deployment }}"
steps:
  - action: restart
"""


def _runbook(name: str = "web-restart", steps: str = "  - action: restart\n", **swap: str) -> str:
    """VALID with another name and steps block; ``swap`` replaces exact substrings."""
    text = VALID.replace("name: web-restart", f"name: {name}").replace(
        "  - action: restart\n", steps
    )
    for old, new in swap.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _write(directory: Path, filename: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(text, encoding="utf-8")
    return path


def _line(text: str, needle: str) -> int:
    """1-based line of the only line of ``text`` containing ``needle``."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) == 1, f"{needle!r} is on lines {found}"
    return found[0]


def _problems(path: Path) -> list[str]:
    with pytest.raises(RunbookError) as info:
        load_file(path, ACTIONS)
    return info.value.problems


# --- a valid runbook -----------------------------------------------------------------------


def test_valid_runbook_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, "web.yaml", VALID)

    runbook = load_file(path, ACTIONS)

    assert runbook.ident == "web-restart@1"
    assert runbook.path == path
    assert runbook.spec.owner == "platform"
    assert [str(m) for m in runbook.matchers] == [
        'alertname="WebDown"',
        'severity=~"warning|critical"',
    ]
    assert runbook.kind == "Deployment"  # no template syntax: kept as plain text
    assert [(s.action, s.where) for s in runbook.steps] == [("restart", "steps[0]")]
    assert runbook.escalate == ()


def test_valid_directory_loads_in_file_order(tmp_path: Path) -> None:
    _write(tmp_path, "b.yaml", _runbook("bravo"))
    _write(tmp_path, "a.yml", _runbook("alpha"))

    runbooks = load_dir(tmp_path, ACTIONS)

    assert isinstance(runbooks, RunbookSet)
    assert [(r.path.name, r.ident) for r in runbooks.runbooks] == [
        ("a.yml", "alpha@1"),
        ("b.yaml", "bravo@1"),
    ]
    assert runbooks.directory == tmp_path


# --- one problem at a time: file, line and field path ------------------------------------------


def test_typo_in_top_level_key_names_its_own_line(tmp_path: Path) -> None:
    text = _runbook(**{"steps:": "stpes:"})
    path = _write(tmp_path, "typo.yaml", text)

    assert _problems(path) == [
        f"{path}:1: steps: Field required",
        f"{path}:{_line(text, 'stpes:')}: stpes: Extra inputs are not permitted",
    ]


def test_unknown_nested_key_names_its_line_and_full_path(tmp_path: Path) -> None:
    text = _runbook(**{"  kind: Deployment\n": "  kind: Deployment\n  namepsace: prod\n"})
    path = _write(tmp_path, "typo.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'namepsace:')}: target.namepsace: Extra inputs are not permitted"
    ]


def test_wrong_type_of_top_level_field(tmp_path: Path) -> None:
    text = _runbook(**{'match:\n  - alertname="WebDown"\n': "match: 5\n"})
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'match: 5')}: match: Input should be a valid list"
    ]


def test_wrong_type_of_nested_field(tmp_path: Path) -> None:
    text = VALID + "guards:\n  dry_run: maybe\n"
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'dry_run:')}: guards.dry_run: "
        "Input should be a valid boolean, unable to interpret input"
    ]


def test_bad_matcher_names_the_line_of_its_list_item(tmp_path: Path) -> None:
    text = _runbook(**{'  - severity=~"warning|critical"': "  - severity=~(bad"})
    path = _write(tmp_path, "bad.yaml", text)

    [problem] = _problems(path)

    expected = (
        f"{path}:{_line(text, 'severity=~(bad')}: match.1: "
        "invalid matcher 'severity=~(bad': invalid regular expression '(bad': "
    )
    assert problem.startswith(expected), problem


def test_bad_matcher_in_approval_when(tmp_path: Path) -> None:
    text = VALID + "approval:\n  required: true\n  when:\n    - team=a\n    - team==b\n"
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'team==b')}: approval.when.1: invalid matcher 'team==b': "
        "unknown operator '=='; expected one of =, !=, =~, !~ "
        "(quote the value if it starts with one of =!~<>)"
    ]


def test_unknown_action_lists_known_actions(tmp_path: Path) -> None:
    text = _runbook(steps="  - action: restart\n  - action: reboot\n")
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'reboot')}: steps.1.action: unknown action 'reboot' "
        "(known: cert_renew, cleanup, notify, restart, rollback, scale)"
    ]


def test_unknown_action_in_escalate(tmp_path: Path) -> None:
    text = VALID + "escalate:\n  - action: page\n"
    path = _write(tmp_path, "bad.yaml", text)

    [problem] = _problems(path)

    assert problem.startswith(
        f"{path}:{_line(text, 'action: page')}: escalate.0.action: unknown action 'page' (known:"
    )


def test_unknown_param_key_names_the_line_of_that_key(tmp_path: Path) -> None:
    steps = "  - action: notify\n    params:\n      message: hello\n      chanel: '#ops'\n"
    text = _runbook(steps=steps)
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'chanel:')}: steps.0.params.chanel: "
        "unknown parameter for notify (known: channel, message)"
    ]


def test_param_for_an_action_without_params(tmp_path: Path) -> None:
    text = _runbook(steps="  - action: restart\n    params:\n      force: true\n")
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'force:')}: steps.0.params.force: "
        "unknown parameter for restart (known: none)"
    ]


def test_missing_required_params(tmp_path: Path) -> None:
    text = _runbook(steps="  - action: scale\n    params:\n      replicas: 3\n")
    path = _write(tmp_path, "bad.yaml", text)
    line = _line(text, "params:")

    assert _problems(path) == [
        f"{path}:{line}: steps.0.params: missing required parameter 'min'",
        f"{path}:{line}: steps.0.params: missing required parameter 'max'",
    ]


def test_missing_params_block_points_at_the_step(tmp_path: Path) -> None:
    text = _runbook(steps="  - action: notify\n")
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'action: notify')}: steps.0.params: "
        "missing required parameter 'message'"
    ]


def test_literal_params_are_validated_at_load(tmp_path: Path) -> None:
    steps = "  - action: scale\n    params:\n      replicas: 3\n      min: 5\n      max: 2\n"
    text = _runbook(steps=steps)
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'params:')}: steps.0.params: Value error, min must not exceed max"
    ]


def test_literal_param_field_error_names_that_param(tmp_path: Path) -> None:
    text = _runbook(
        steps="  - action: rollback\n    params:\n      to_revision: -1\n",
        **{"kind: Deployment": "kind: Rollout"},
    )
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'to_revision:')}: steps.0.params.to_revision: "
        "Input should be greater than or equal to 0"
    ]


def test_templated_params_are_not_validated_at_load(tmp_path: Path) -> None:
    steps = (
        "  - action: scale\n    params:\n"
        '      replicas: "{{ labels.n }}"\n      min: 1\n      max: 5\n'
    )
    path = _write(tmp_path, "scale.yaml", _runbook(steps=steps))

    runbook = load_file(path, ACTIONS)

    # Validation happens when the alert's values are known, at plan time.
    labels = {"alertname": "WebDown", "namespace": "prod", "deployment": "web"}
    planned = plan(runbook, sample_instance({**labels, "n": "3"}), ACTIONS)
    assert planned.steps[0].params == ScaleParams(replicas=3, min=1, max=5)
    with pytest.raises(PlanError) as info:
        plan(runbook, sample_instance({**labels, "n": "-1"}), ACTIONS)
    assert info.value.reason == "invalid_params"
    assert str(info.value) == (
        "steps[0].params.replicas: Input should be greater than or equal to 0"
    )


def test_template_syntax_error_in_target_name(tmp_path: Path) -> None:
    text = _runbook(**{'name: "{{ labels.deployment }}"': 'name: "{{ labels.deployment "'})
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, '{{ labels.deployment')}: target.name: template syntax error: "
        "unexpected end of template, expected 'end of print statement'."
    ]


def test_template_syntax_error_in_params(tmp_path: Path) -> None:
    text = _runbook(steps="  - action: notify\n    params:\n      message: '{% if %}'\n")
    path = _write(tmp_path, "bad.yaml", text)

    [problem] = _problems(path)

    assert problem.startswith(f"{path}:{_line(text, 'params:')}: steps.0.params: template syntax")


def test_action_on_unsupported_kind(tmp_path: Path) -> None:
    text = _runbook(**{"kind: Deployment": "kind: Certificate"})
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [
        f"{path}:{_line(text, 'kind: Certificate')}: target.kind: "
        "restart acts on DaemonSet, Deployment, StatefulSet, not Certificate"
    ]


def test_templated_kind_is_checked_at_plan_time_not_load(tmp_path: Path) -> None:
    text = _runbook(**{"kind: Deployment": 'kind: "{{ labels.kind }}"'})
    path = _write(tmp_path, "templated.yaml", text)

    runbook = load_file(path, ACTIONS)

    labels = {"alertname": "WebDown", "namespace": "prod", "deployment": "web"}
    with pytest.raises(PlanError) as info:
        plan(runbook, sample_instance({**labels, "kind": "Certificate"}), ACTIONS)
    assert info.value.reason == "invalid_params"
    assert str(info.value) == "steps[0]: restart cannot act on kind 'Certificate'"


def test_invalid_runbook_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", _runbook("Web_Restart"))

    assert _problems(path) == [
        f"{path}:1: name: Value error, must be lowercase letters, digits and '-' (DNS-1123 label)"
    ]


def test_invalid_yaml_names_the_line_of_the_syntax_error(tmp_path: Path) -> None:
    text = _runbook(**{"  kind: Deployment\n": "  kind: Deployment\n   extra: : x\n"})
    path = _write(tmp_path, "bad.yaml", text)

    [problem] = _problems(path)

    assert problem.startswith(
        f"{path}:{_line(text, 'extra: : x')}: not valid YAML: mapping values are not allowed here"
    ), problem


def test_duplicate_yaml_keys_are_an_error(tmp_path: Path) -> None:
    text = VALID + "owner: someone-else\n"
    path = _write(tmp_path, "dup.yaml", text)

    [problem] = _problems(path)

    assert problem.startswith(f"{path}:{_line(text, 'someone-else')}: not valid YAML:"), problem
    assert 'found duplicate key "owner"' in problem


@pytest.mark.parametrize("text", ["- name: a\n- name: b\n", "just text\n", "", "# only\n"])
def test_non_mapping_document(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "bad.yaml", text)

    assert _problems(path) == [f"{path}:1: (top level): a runbook file must be a YAML mapping"]


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: \xff\xfe\n")

    [problem] = _problems(path)

    assert problem.startswith(f"{path}:1: cannot read: ")


# --- directories ---------------------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    with pytest.raises(RunbookError) as info:
        load_dir(missing, ACTIONS)

    assert info.value.problems == [f"{missing}: runbook directory does not exist"]


def test_duplicate_runbook_names_across_files(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.yaml", VALID)
    second = _write(tmp_path, "b.yaml", VALID.replace("owner: platform", "owner: web"))

    with pytest.raises(RunbookError) as info:
        load_dir(tmp_path, ACTIONS)

    assert info.value.problems == [f"{second}:1: name: 'web-restart' is also defined in {first}"]


def test_all_problems_of_all_files_are_reported_together(tmp_path: Path) -> None:
    a_text = _runbook("alpha", steps="  - action: reboot\n")
    a = _write(tmp_path, "a.yaml", a_text)
    _write(tmp_path, "b.yaml", _runbook("bravo"))  # valid: contributes nothing
    c_text = _runbook(
        "charlie",
        **{
            '  - severity=~"warning|critical"': "  - severity=~(bad",
            "kind: Deployment": "kind: Rollout",
        },
    )
    c = _write(tmp_path, "c.yml", c_text)
    d = _write(tmp_path, "d.yaml", "- not a mapping\n")

    with pytest.raises(RunbookError) as info:
        load_dir(tmp_path, ACTIONS)

    problems = info.value.problems
    assert len(problems) == 4, problems
    assert problems[0] == (
        f"{a}:{_line(a_text, 'reboot')}: steps.0.action: unknown action 'reboot' "
        "(known: cert_renew, cleanup, notify, restart, rollback, scale)"
    )
    assert problems[1].startswith(f"{c}:{_line(c_text, '(bad')}: match.1: invalid matcher")
    assert problems[2] == (
        f"{c}:{_line(c_text, 'kind: Rollout')}: target.kind: "
        "restart acts on DaemonSet, Deployment, StatefulSet, not Rollout"
    )
    assert problems[3] == f"{d}:1: (top level): a runbook file must be a YAML mapping"
    assert str(info.value) == "\n".join(problems)


def test_only_yaml_files_are_read(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", _runbook("alpha"))
    _write(tmp_path, "b.yml", _runbook("bravo"))
    _write(tmp_path, "schema.json", '{"not": "a runbook"}\n')
    _write(tmp_path, "README.md", "# Runbooks\n\nname: [unclosed\n")
    _write(tmp_path, "c.yaml.bak", "stpes: broken\n")
    (tmp_path / "dir.yaml").mkdir()

    runbooks = load_dir(tmp_path, ACTIONS)

    assert [r.path.name for r in runbooks.runbooks] == ["a.yaml", "b.yml"]


# --- matching ------------------------------------------------------------------------------


def test_runbook_set_match(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", VALID)
    _write(
        tmp_path,
        "b.yaml",
        _runbook("disk", **{'alertname="WebDown"': 'alertname="DiskFull"'}),
    )
    runbooks = load_dir(tmp_path, ACTIONS)
    web = {"alertname": "WebDown", "severity": "critical", "namespace": "prod"}

    assert [r.ident for r in runbooks.match(web)] == ["web-restart@1"]
    assert [r.ident for r in runbooks.match({**web, "alertname": "DiskFull"})] == ["disk@1"]
    assert runbooks.match({**web, "severity": "info"}) == []
    assert runbooks.match({"alertname": "WebDown"}) == []  # severity absent
    assert runbooks.match({**web, "alertname": "Other"}) == []


# --- git commit ----------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Never let git find a repository above the test's own directory.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    _write(root / "runbooks", "web.yaml", VALID)
    _write(root / "docs", "notes.md", "notes\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "runbooks")
    return root


def test_git_commit_of_a_clean_checkout(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert len(head) == 40

    assert git_commit(repo / "runbooks") == head
    assert load_dir(repo / "runbooks", ACTIONS).commit == head


def test_git_commit_after_an_uncommitted_edit_is_dirty(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "runbooks" / "web.yaml").write_text(VALID.replace("platform", "web"), "utf-8")

    assert git_commit(repo / "runbooks") == f"{head}-dirty"


def test_git_commit_with_an_untracked_runbook_is_dirty(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    _write(repo / "runbooks", "new.yaml", _runbook("new"))

    assert git_commit(repo / "runbooks") == f"{head}-dirty"


def test_git_commit_ignores_edits_outside_the_runbook_directory(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "docs" / "notes.md").write_text("changed\n", "utf-8")

    assert git_commit(repo / "runbooks") == head


def test_git_commit_outside_a_repository_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    directory = tmp_path / "runbooks"
    _write(directory, "web.yaml", VALID)

    assert git_commit(directory) is None
    assert load_dir(directory, ACTIONS).commit is None


# --- problems that must not hide each other, and lines that must be exact ------------------


def test_dotted_version_written_as_a_number_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("version: 1", "version: 1.10")
    [problem] = _problems(_write(tmp_path, "web.yaml", text))
    assert problem.startswith(f"{tmp_path / 'web.yaml'}:{_line(text, 'version:')}: version: ")
    assert "version: '1.1'" in problem


def test_an_earlier_problem_does_not_hide_a_later_params_problem(tmp_path: Path) -> None:
    steps = (
        "  - action: notify\n    params: {chanel: x, message: hi}\n"
        "  - action: scale\n    params: {replicas: 3, min: 5, max: 2}\n"
    )
    text = _runbook(steps=steps, **{"kind: Deployment": "kind: Deployment"})
    problems = _problems(_write(tmp_path, "web.yaml", text))
    assert any("steps.0.params.chanel" in p for p in problems)
    assert any("steps.1.params" in p and "min must not exceed max" in p for p in problems)


def test_wrong_kind_is_reported_once_per_action(tmp_path: Path) -> None:
    text = _runbook(
        steps="  - action: restart\n  - action: restart\n",
        **{"kind: Deployment": "kind: Certificate"},
    )
    problems = _problems(_write(tmp_path, "web.yaml", text))
    assert [p for p in problems if "target.kind" in p] == [
        f"{tmp_path / 'web.yaml'}:{_line(text, 'kind:')}: target.kind: "
        "restart acts on DaemonSet, Deployment, StatefulSet, not Certificate"
    ]


def test_duplicate_name_points_at_the_name_line(tmp_path: Path) -> None:
    text = "# a comment first\n" + VALID
    _write(tmp_path, "a.yaml", text)
    second = _write(tmp_path, "b.yaml", text)
    with pytest.raises(RunbookError) as info:
        load_dir(tmp_path, ACTIONS)
    assert info.value.problems == [
        f"{second}:2: name: 'web-restart' is also defined in {tmp_path / 'a.yaml'}"
    ]


def test_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    text = VALID.replace("owner: platform", "owner: [platform")
    [problem] = _problems(_write(tmp_path, "web.yaml", text))
    assert "\n" not in problem
    assert problem.startswith(f"{tmp_path / 'web.yaml'}:")
    assert "not valid YAML" in problem
