"""Declaring the parameter table (mdi_exit_ros/params.py) on an rclpy node.

The table, its validation and the docs it generates are pure Python; this is the part that
needs rclpy: descriptors, the typed declarations and the pre-set callback that widens
integers given for doubles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mdi_exit_ros.params import (
    CHECKPOINT,
    SPECS,
    UNSET_DOUBLE,
    UNSET_DOUBLES,
    UNSET_INTEGER,
    UNSET_STRINGS,
    WORKER_PARAMS,
    Spec,
    is_double,
    is_double_array,
    is_integer,
    threshold_source_of,
    widen,
)

if TYPE_CHECKING:
    from typing import Any

    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node
    from rclpy.parameter import Parameter


def descriptor(spec: Spec) -> ParameterDescriptor:
    """A ParameterDescriptor with the spec's range, choices and read-only flag."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = spec.description
    if spec.choices:
        text += f" (one of: {', '.join(spec.choices)})"
    d = ParameterDescriptor(description=text, read_only=spec.read_only)
    if spec.low is not None and spec.high is not None:
        if is_integer(spec):
            d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high),
                                            step=0)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                         to_value=float(spec.high), step=0.0)]
    return d


def widen_parameters(parameters: list[Parameter]) -> list[Parameter]:
    """Pre-set callback: integers given for double parameters become doubles, and setting
    exit_threshold or exit_thresholds sets threshold_source with it (unless the same change
    sets threshold_source itself).

    rclpy checks types before any on-set callback runs and refuses an INTEGER for a
    DOUBLE parameter, so the conversion has to happen here.
    """
    from rclpy.parameter import Parameter

    out = []
    for p in parameters:
        spec = SPECS.get(p.name)
        value = widen(spec, p.value) if spec is not None else p.value
        out.append(p if value is p.value else Parameter(p.name, value=value))
    names = {p.name for p in out}
    source = threshold_source_of(names)
    if source is not None and "threshold_source" not in names:
        out.append(Parameter("threshold_source", value=source))
    return out


def _declared_default(spec: Spec) -> Any:
    """What `declare_parameter` gets for `spec`: its default, or the type of an unset one."""
    from rclpy.parameter import Parameter

    unset = {UNSET_DOUBLES: Parameter.Type.DOUBLE_ARRAY, UNSET_DOUBLE: Parameter.Type.DOUBLE,
             UNSET_INTEGER: Parameter.Type.INTEGER, UNSET_STRINGS: Parameter.Type.STRING_ARRAY}
    if spec.name == "threshold_source":
        return Parameter.Type.STRING  # unset unless given; chosen below from what was given
    return unset.get(spec.default, spec.default) if isinstance(spec.default, str) \
        else spec.default


def _is_set(node: Node, name: str) -> bool:
    from rclpy.exceptions import ParameterUninitializedException

    try:
        node.get_parameter(name).value  # noqa: B018 - raises for an unset parameter
    except ParameterUninitializedException:
        return False
    return True


def declare(node: Node, source: bool) -> None:
    """Declare the worker's (and, for a source, the source's) parameters on `node`.

    An integer override of a double (`-p compute_slowdown:=4`, a YAML `4`) is read through
    a dynamically typed declaration and declared again as the double it means; later sets
    go through `widen_parameters`.
    """
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.exceptions import InvalidParameterTypeException
    from rclpy.parameter import Parameter

    for spec in WORKER_PARAMS:
        if spec.source_only and not source:
            continue
        default = _declared_default(spec)
        try:
            node.declare_parameter(spec.name, default, descriptor(spec))
        except InvalidParameterTypeException:
            if not (is_double(spec) or is_double_array(spec)):
                raise
            given = node.declare_parameter(
                spec.name, None, ParameterDescriptor(dynamic_typing=True)).value
            node.undeclare_parameter(spec.name)
            value = widen(spec, given)
            if value is given:  # not an integer either: refuse it as rclpy would
                raise
            node.declare_parameter(spec.name, value, descriptor(spec), ignore_override=True)
    if not _is_set(node, "threshold_source"):
        given = threshold_source_of({n for n in ("exit_threshold", "exit_thresholds")
                                     if _is_set(node, n)})
        node.set_parameters([Parameter("threshold_source", value=given or CHECKPOINT)])
    node.add_pre_set_parameters_callback(widen_parameters)
