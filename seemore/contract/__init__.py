"""The artifact contract: what an artifact is built for and what it is.

* :mod:`seemore.contract.spec` - :class:`ExportSpec`: backend, precision, runtime, fixed shape
* :mod:`seemore.contract.schema` - :class:`ArtifactContract`, the typed, versioned record
  written beside every artifact, with its validator
* :mod:`seemore.contract.store` - writing, reading, discovering contracts; the relative paths
  inside them
"""

from seemore.contract.schema import (
    CONTRACT_FORMAT,
    CONTRACT_VERSION,
    ArtifactContract,
    ContractError,
    FileRecord,
    QuantizationRecord,
    SourceRecord,
    TensorRecord,
    io_records,
    tool_versions,
)
from seemore.contract.spec import DEFAULT_LR_HEIGHT, DEFAULT_LR_WIDTH, ExportSpec, SpecError
from seemore.contract.store import (
    FoundContract,
    artifact_path,
    contract_path,
    discover,
    file_record,
    find_source_checkpoint,
    read_contract,
    source_record,
    write_contract,
)

__all__ = [
    "CONTRACT_FORMAT",
    "CONTRACT_VERSION",
    "DEFAULT_LR_HEIGHT",
    "DEFAULT_LR_WIDTH",
    "ArtifactContract",
    "ContractError",
    "ExportSpec",
    "FileRecord",
    "FoundContract",
    "QuantizationRecord",
    "SourceRecord",
    "SpecError",
    "TensorRecord",
    "artifact_path",
    "contract_path",
    "discover",
    "file_record",
    "find_source_checkpoint",
    "io_records",
    "read_contract",
    "source_record",
    "tool_versions",
    "write_contract",
]
