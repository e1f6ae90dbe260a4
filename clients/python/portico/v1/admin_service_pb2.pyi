import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from portico.v1 import llm_service_pb2 as _llm_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AdminEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADMIN_EVENT_KIND_UNSPECIFIED: _ClassVar[AdminEventKind]
    ADMIN_EVENT_KIND_SWITCH: _ClassVar[AdminEventKind]
    ADMIN_EVENT_KIND_RELOAD: _ClassVar[AdminEventKind]
    ADMIN_EVENT_KIND_BREAKER_RESET: _ClassVar[AdminEventKind]
ADMIN_EVENT_KIND_UNSPECIFIED: AdminEventKind
ADMIN_EVENT_KIND_SWITCH: AdminEventKind
ADMIN_EVENT_KIND_RELOAD: AdminEventKind
ADMIN_EVENT_KIND_BREAKER_RESET: AdminEventKind

class ListBreakersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BreakerInfo(_message.Message):
    __slots__ = ("provider", "key", "state", "consecutive_failures", "opened_at", "next_trial_at", "times_opened", "successes", "failures", "rejections")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_TRIAL_AT_FIELD_NUMBER: _ClassVar[int]
    TIMES_OPENED_FIELD_NUMBER: _ClassVar[int]
    SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    key: str
    state: _llm_service_pb2.BreakerState
    consecutive_failures: int
    opened_at: _timestamp_pb2.Timestamp
    next_trial_at: _timestamp_pb2.Timestamp
    times_opened: int
    successes: int
    failures: int
    rejections: int
    def __init__(self, provider: _Optional[str] = ..., key: _Optional[str] = ..., state: _Optional[_Union[_llm_service_pb2.BreakerState, str]] = ..., consecutive_failures: _Optional[int] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_trial_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., times_opened: _Optional[int] = ..., successes: _Optional[int] = ..., failures: _Optional[int] = ..., rejections: _Optional[int] = ...) -> None: ...

class ListBreakersResponse(_message.Message):
    __slots__ = ("breakers",)
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    breakers: _containers.RepeatedCompositeFieldContainer[BreakerInfo]
    def __init__(self, breakers: _Optional[_Iterable[_Union[BreakerInfo, _Mapping]]] = ...) -> None: ...

class ResetBreakerRequest(_message.Message):
    __slots__ = ("provider", "reason")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    provider: str
    reason: str
    def __init__(self, provider: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResetBreakerResponse(_message.Message):
    __slots__ = ("breakers",)
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    breakers: _containers.RepeatedCompositeFieldContainer[BreakerInfo]
    def __init__(self, breakers: _Optional[_Iterable[_Union[BreakerInfo, _Mapping]]] = ...) -> None: ...

class SwitchRouteRequest(_message.Message):
    __slots__ = ("route", "target", "reason")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    route: str
    target: str
    reason: str
    def __init__(self, route: _Optional[str] = ..., target: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SwitchRouteResponse(_message.Message):
    __slots__ = ("route", "target", "previous_target")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TARGET_FIELD_NUMBER: _ClassVar[int]
    route: str
    target: str
    previous_target: str
    def __init__(self, route: _Optional[str] = ..., target: _Optional[str] = ..., previous_target: _Optional[str] = ...) -> None: ...

class ReloadConfigRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ReloadConfigResponse(_message.Message):
    __slots__ = ("providers", "config_path")
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PATH_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedScalarFieldContainer[str]
    config_path: str
    def __init__(self, providers: _Optional[_Iterable[str]] = ..., config_path: _Optional[str] = ...) -> None: ...

class AdminEvent(_message.Message):
    __slots__ = ("time", "kind", "subject", "reason", "ok", "detail")
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    kind: AdminEventKind
    subject: str
    reason: str
    ok: bool
    detail: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[AdminEventKind, str]] = ..., subject: _Optional[str] = ..., reason: _Optional[str] = ..., ok: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class ListAdminEventsRequest(_message.Message):
    __slots__ = ("page_size",)
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    def __init__(self, page_size: _Optional[int] = ...) -> None: ...

class ListAdminEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AdminEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[AdminEvent, _Mapping]]] = ...) -> None: ...
