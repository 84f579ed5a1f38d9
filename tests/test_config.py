import pytest

from handful.config import GradeConfig, load_config
from handful.errors import ConfigError


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("workers: 1\ntimeout: 3\n")
    assert load_config(GradeConfig, f, ["timeout=0.5"]) == GradeConfig(workers=1, timeout=0.5)


def test_every_bad_field_is_reported_at_once(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("workers: -1\ntimout: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(GradeConfig, f)
    message = str(err.value)
    assert (
        message.startswith(str(f)) and "workers:" in message and "timout: " in message and "unknown setting" in message
    )


def test_bad_yaml_names_the_line(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("workers: 1\ntimeout: [\n")
    with pytest.raises(ConfigError, match=r"g.yaml:\d+: not valid YAML"):
        load_config(GradeConfig, f)


def test_bad_override():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(GradeConfig, overrides=["workers"])
