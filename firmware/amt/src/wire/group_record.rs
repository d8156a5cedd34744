//! Group records shared by IGMPv3 reports (RFC 3376 4.2.4) and MLDv2 reports (RFC 3810 5.2.4):
//! a record type, a multicast address and a list of sources.

/// Group record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// MODE_IS_INCLUDE (1): current state, receive from the listed sources.
    ModeIsInclude,
    /// MODE_IS_EXCLUDE (2): current state, receive from all but the listed sources.
    ModeIsExclude,
    /// CHANGE_TO_INCLUDE_MODE (3).
    ChangeToInclude,
    /// CHANGE_TO_EXCLUDE_MODE (4).
    ChangeToExclude,
    /// ALLOW_NEW_SOURCES (5): start receiving from the listed sources.
    AllowNewSources,
    /// BLOCK_OLD_SOURCES (6): stop receiving from the listed sources.
    BlockOldSources,
    /// Any other value; receivers ignore such records.
    Other(u8),
}

impl RecordType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            RecordType::ModeIsInclude => 1,
            RecordType::ModeIsExclude => 2,
            RecordType::ChangeToInclude => 3,
            RecordType::ChangeToExclude => 4,
            RecordType::AllowNewSources => 5,
            RecordType::BlockOldSources => 6,
            RecordType::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            v => RecordType::Other(v),
        }
    }
}

/// One group record; `A` is `Ipv4Addr` (IGMPv3) or `Ipv6Addr` (MLDv2).
///
/// Auxiliary data is skipped on decode and never written (RFC 3376 and 3810 define none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupRecord<A> {
    /// Record type.
    pub record_type: RecordType,
    /// Multicast address.
    pub group: A,
    /// Source addresses.
    pub sources: Vec<A>,
}
