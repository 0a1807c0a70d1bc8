import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterUsingTokenRequest(_message.Message):
    __slots__ = ("Role", "Token", "PublicTLSKey", "PublicSSHKey", "RemoteAddr", "Expires")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PUBLICTLSKEY_FIELD_NUMBER: _ClassVar[int]
    PUBLICSSHKEY_FIELD_NUMBER: _ClassVar[int]
    REMOTEADDR_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    Role: str
    Token: str
    PublicTLSKey: bytes
    PublicSSHKey: bytes
    RemoteAddr: str
    Expires: _timestamp_pb2.Timestamp
    def __init__(self, Role: _Optional[str] = ..., Token: _Optional[str] = ..., PublicTLSKey: _Optional[bytes] = ..., PublicSSHKey: _Optional[bytes] = ..., RemoteAddr: _Optional[str] = ..., Expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("Name", "Namespace", "Description", "Labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    Name: str
    Namespace: str
    Description: str
    Labels: _containers.ScalarMap[str, str]
    def __init__(self, Name: _Optional[str] = ..., Namespace: _Optional[str] = ..., Description: _Optional[str] = ..., Labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CommandLabelV2(_message.Message):
    __slots__ = ("Period", "Command", "Result")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    Period: int
    Command: _containers.RepeatedScalarFieldContainer[str]
    Result: str
    def __init__(self, Period: _Optional[int] = ..., Command: _Optional[_Iterable[str]] = ..., Result: _Optional[str] = ...) -> None: ...

class KubernetesClusterSpecV3(_message.Message):
    __slots__ = ("DynamicLabels",)
    class DynamicLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: CommandLabelV2
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[CommandLabelV2, _Mapping]] = ...) -> None: ...
    DYNAMICLABELS_FIELD_NUMBER: _ClassVar[int]
    DynamicLabels: _containers.MessageMap[str, CommandLabelV2]
    def __init__(self, DynamicLabels: _Optional[_Mapping[str, CommandLabelV2]] = ...) -> None: ...

class KubernetesClusterV3(_message.Message):
    __slots__ = ("Kind", "SubKind", "Version", "Metadata", "Spec")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBKIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    Kind: str
    SubKind: str
    Version: str
    Metadata: Metadata
    Spec: KubernetesClusterSpecV3
    def __init__(self, Kind: _Optional[str] = ..., SubKind: _Optional[str] = ..., Version: _Optional[str] = ..., Metadata: _Optional[_Union[Metadata, _Mapping]] = ..., Spec: _Optional[_Union[KubernetesClusterSpecV3, _Mapping]] = ...) -> None: ...

class KubernetesServerSpecV3(_message.Message):
    __slots__ = ("Version", "Hostname", "HostID", "Cluster")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    HOSTID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    Version: str
    Hostname: str
    HostID: str
    Cluster: KubernetesClusterV3
    def __init__(self, Version: _Optional[str] = ..., Hostname: _Optional[str] = ..., HostID: _Optional[str] = ..., Cluster: _Optional[_Union[KubernetesClusterV3, _Mapping]] = ...) -> None: ...

class KubernetesServerV3(_message.Message):
    __slots__ = ("Kind", "SubKind", "Version", "Metadata", "Spec")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBKIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    Kind: str
    SubKind: str
    Version: str
    Metadata: Metadata
    Spec: KubernetesServerSpecV3
    def __init__(self, Kind: _Optional[str] = ..., SubKind: _Optional[str] = ..., Version: _Optional[str] = ..., Metadata: _Optional[_Union[Metadata, _Mapping]] = ..., Spec: _Optional[_Union[KubernetesServerSpecV3, _Mapping]] = ...) -> None: ...

class ImpersonateConditions(_message.Message):
    __slots__ = ("Users", "Roles")
    USERS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    Users: _containers.RepeatedScalarFieldContainer[str]
    Roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, Users: _Optional[_Iterable[str]] = ..., Roles: _Optional[_Iterable[str]] = ...) -> None: ...

class RoleConditions(_message.Message):
    __slots__ = ("Impersonate",)
    IMPERSONATE_FIELD_NUMBER: _ClassVar[int]
    Impersonate: ImpersonateConditions
    def __init__(self, Impersonate: _Optional[_Union[ImpersonateConditions, _Mapping]] = ...) -> None: ...

class RoleSpecV6(_message.Message):
    __slots__ = ("Allow", "Deny")
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    DENY_FIELD_NUMBER: _ClassVar[int]
    Allow: RoleConditions
    Deny: RoleConditions
    def __init__(self, Allow: _Optional[_Union[RoleConditions, _Mapping]] = ..., Deny: _Optional[_Union[RoleConditions, _Mapping]] = ...) -> None: ...

class RoleV6(_message.Message):
    __slots__ = ("Kind", "SubKind", "Version", "Metadata", "Spec")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBKIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    Kind: str
    SubKind: str
    Version: str
    Metadata: Metadata
    Spec: RoleSpecV6
    def __init__(self, Kind: _Optional[str] = ..., SubKind: _Optional[str] = ..., Version: _Optional[str] = ..., Metadata: _Optional[_Union[Metadata, _Mapping]] = ..., Spec: _Optional[_Union[RoleSpecV6, _Mapping]] = ...) -> None: ...

class TLSKeyPair(_message.Message):
    __slots__ = ("Cert", "Key")
    CERT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    Cert: bytes
    Key: bytes
    def __init__(self, Cert: _Optional[bytes] = ..., Key: _Optional[bytes] = ...) -> None: ...

class CAKeySet(_message.Message):
    __slots__ = ("TLS",)
    TLS_FIELD_NUMBER: _ClassVar[int]
    TLS: _containers.RepeatedCompositeFieldContainer[TLSKeyPair]
    def __init__(self, TLS: _Optional[_Iterable[_Union[TLSKeyPair, _Mapping]]] = ...) -> None: ...

class Rotation(_message.Message):
    __slots__ = ("State", "Phase", "Mode", "CurrentID")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CURRENTID_FIELD_NUMBER: _ClassVar[int]
    State: str
    Phase: str
    Mode: str
    CurrentID: str
    def __init__(self, State: _Optional[str] = ..., Phase: _Optional[str] = ..., Mode: _Optional[str] = ..., CurrentID: _Optional[str] = ...) -> None: ...

class CertAuthoritySpecV2(_message.Message):
    __slots__ = ("Type", "ClusterName", "Rotation", "ActiveKeys", "AdditionalTrustedKeys")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CLUSTERNAME_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    ACTIVEKEYS_FIELD_NUMBER: _ClassVar[int]
    ADDITIONALTRUSTEDKEYS_FIELD_NUMBER: _ClassVar[int]
    Type: str
    ClusterName: str
    Rotation: Rotation
    ActiveKeys: CAKeySet
    AdditionalTrustedKeys: CAKeySet
    def __init__(self, Type: _Optional[str] = ..., ClusterName: _Optional[str] = ..., Rotation: _Optional[_Union[Rotation, _Mapping]] = ..., ActiveKeys: _Optional[_Union[CAKeySet, _Mapping]] = ..., AdditionalTrustedKeys: _Optional[_Union[CAKeySet, _Mapping]] = ...) -> None: ...

class CertAuthorityV2(_message.Message):
    __slots__ = ("Kind", "SubKind", "Version", "Metadata", "Spec")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBKIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    Kind: str
    SubKind: str
    Version: str
    Metadata: Metadata
    Spec: CertAuthoritySpecV2
    def __init__(self, Kind: _Optional[str] = ..., SubKind: _Optional[str] = ..., Version: _Optional[str] = ..., Metadata: _Optional[_Union[Metadata, _Mapping]] = ..., Spec: _Optional[_Union[CertAuthoritySpecV2, _Mapping]] = ...) -> None: ...
