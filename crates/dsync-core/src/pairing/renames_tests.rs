use super::*;
use crate::model::{Flags, MailboxStatus, MessageMeta, UidValidity};
use crate::state::pairs::Pair;

fn name(text: &str) -> MailboxName {
    MailboxName::split(text, Some('/')).expect("name")
}

fn names(list: &[&str]) -> BTreeSet<MailboxName> {
    list.iter().map(|n| name(n)).collect()
}

fn uid(n: u32) -> Uid {
    Uid::new(n).expect("non-zero")
}

/// An entry with UIDVALIDITY `a` on the source and `b` on the destination, pairing
/// source UID n with destination UID 100 + n for each n in `uids`.
fn entry(a: u32, b: u32, uids: &[u32]) -> MailboxPairs {
    let mut entry = MailboxPairs::new(a, b);
    for n in uids {
        entry.pairs.insert(uid(*n), Pair { destination: uid(100 + n), flags: Flags::default() });
    }
    entry
}

fn known(list: &[(&str, u32, u32, &[u32])]) -> BTreeMap<MailboxName, MailboxPairs> {
    list.iter().map(|(n, a, b, uids)| (name(n), entry(*a, *b, uids))).collect()
}

/// Contents with messages (UID, size, received).
fn contents(validity: u32, uid_next: u32, messages: &[(u32, u64, i64)]) -> MailboxContents {
    let messages: Vec<MessageMeta> = messages
        .iter()
        .map(|(n, size, received)| {
            let mut meta = MessageMeta::new(uid(*n), Flags::default());
            meta.virtual_size = Some(*size);
            meta.received = Some(*received);
            meta
        })
        .collect();
    MailboxContents {
        status: MailboxStatus::new(
            UidValidity::new(validity).expect("non-zero"),
            uid(uid_next),
            u32::try_from(messages.len()).expect("few"),
        ),
        messages,
    }
}

/// A new name on a side, with its UIDVALIDITY.
type Appeared = (Side, MailboxName, u32);

/// What, gone, appeared, the renames expected.
type Case = (&'static str, Vec<Gone>, Vec<Appeared>, Vec<Rename>);

const A: Side = Side::Source;
const B: Side = Side::Destination;

#[test]
fn candidates_are_known_folders_gone_from_a_followed_side_and_new_names() {
    let state = known(&[("Archive", 7, 8, &[1]), ("INBOX", 1, 2, &[1]), ("Kept", 3, 4, &[])]);
    // Two-way: Archive gone from A; A gained Old; B gained Mine (B's own new folder).
    let found = candidates(
        &state,
        &names(&["INBOX", "Kept", "Old", "Shared"]),
        &names(&["INBOX", "Kept", "Archive", "Mine", "Shared"]),
        true,
    );
    assert_eq!(found.gone, vec![Gone { name: name("Archive"), sides: vec![A] }]);
    assert_eq!(found.appeared, vec![(A, name("Old")), (B, name("Mine"))]);
    // Nothing gone: nothing to look at.
    let none = candidates(
        &state,
        &names(&["INBOX", "Kept", "Archive"]),
        &names(&["Archive", "Kept"]),
        true,
    );
    assert_eq!(none, Candidates::default());
    // One-way: only the source's renames, and the destination must have the old name.
    let one_way = candidates(&state, &names(&["Old"]), &names(&["Archive", "Mine"]), false);
    // (Kept: gone from the destination too, nothing to rename there.)
    assert_eq!(one_way.gone, vec![Gone { name: name("Archive"), sides: vec![A] }]);
    assert_eq!(one_way.appeared, vec![(A, name("Old"))]);
    // Gone from both sides (two-way).
    let both = candidates(&state, &names(&["Kept", "X"]), &names(&["Kept", "Y"]), true);
    assert_eq!(both.gone, vec![Gone { name: name("Archive"), sides: vec![A, B] }]);
}

#[test]
fn a_rename_is_a_unique_uidvalidity_match_both_ways() {
    let state = known(&[("Archive", 7, 8, &[1]), ("Work", 9, 10, &[1])]);
    let gone = |list: &[(&str, &[Side])]| -> Vec<Gone> {
        list.iter().map(|(n, sides)| Gone { name: name(n), sides: sides.to_vec() }).collect()
    };
    let rename = |from: &str, to: &str, on: Side, follow: Option<(Side, &str)>| Rename {
        from: name(from),
        to: name(to),
        renamed_on: vec![(on, name(to))],
        follow: follow.map(|(side, n)| (side, name(n))),
    };
    let cases: Vec<Case> = vec![
        (
            "renamed on A: B follows",
            gone(&[("Archive", &[A])]),
            vec![(A, name("Old"), 7)],
            vec![rename("Archive", "Old", A, Some((B, "Archive")))],
        ),
        (
            "renamed on B: A follows",
            gone(&[("Archive", &[B])]),
            vec![(B, name("Old"), 8)],
            vec![rename("Archive", "Old", B, Some((A, "Archive")))],
        ),
        (
            "another UIDVALIDITY: a new folder",
            gone(&[("Archive", &[A])]),
            vec![(A, name("Old"), 8)],
            vec![],
        ),
        (
            "two new names with the same UIDVALIDITY: unsure",
            gone(&[("Archive", &[A])]),
            vec![(A, name("Old"), 7), (A, name("Older"), 7)],
            vec![],
        ),
        (
            "two gone folders claim one new name (a server with one UIDVALIDITY): unsure",
            vec![
                Gone { name: name("Archive"), sides: vec![A] },
                Gone { name: name("Work"), sides: vec![A] },
            ],
            vec![(A, name("Old"), 7)],
            vec![],
        ),
        (
            "the same UIDVALIDITY on the other side does not count",
            gone(&[("Archive", &[A])]),
            vec![(B, name("Old"), 7)],
            vec![],
        ),
    ];
    let state_same = known(&[("Archive", 7, 8, &[1]), ("Work", 7, 8, &[1])]);
    for (what, gone, appeared, expected) in cases {
        let state = if what.contains("claim") { &state_same } else { &state };
        assert_eq!(match_renames(state, &gone, &appeared), expected, "{what}");
    }
}

#[test]
fn both_sides_renamed_it_the_source_name_wins() {
    let state = known(&[("Archive", 7, 8, &[1])]);
    let gone = vec![Gone { name: name("Archive"), sides: vec![A, B] }];
    let different = match_renames(&state, &gone, &[(A, name("OnA"), 7), (B, name("OnB"), 8)]);
    assert_eq!(
        different,
        vec![Rename {
            from: name("Archive"),
            to: name("OnA"),
            renamed_on: vec![(A, name("OnA")), (B, name("OnB"))],
            follow: Some((B, name("OnB"))),
        }]
    );
    let same = match_renames(&state, &gone, &[(A, name("New"), 7), (B, name("New"), 8)]);
    assert_eq!(same.len(), 1);
    assert_eq!((same[0].to.clone(), same[0].follow.clone()), (name("New"), None));
    // Renamed on one side, gone (deleted) on the other: a delete, as before.
    assert_eq!(match_renames(&state, &gone, &[(A, name("OnA"), 7)]), vec![]);
}

#[test]
fn children_move_with_their_parent() {
    let state = known(&[("Archive", 7, 8, &[]), ("Archive/2023", 17, 18, &[1])]);
    let gone = vec![
        Gone { name: name("Archive"), sides: vec![A] },
        Gone { name: name("Archive/2023"), sides: vec![A] },
    ];
    let renames = match_renames(&state, &gone, &[(A, name("Old"), 7), (A, name("Old/2023"), 17)]);
    assert_eq!(renames.len(), 1, "{renames:?}");
    assert_eq!((renames[0].from.clone(), renames[0].to.clone()), (name("Archive"), name("Old")));
    // A child that went elsewhere than its parent: neither is sure.
    let elsewhere =
        match_renames(&state, &gone, &[(A, name("Old"), 7), (A, name("Other/2023"), 17)]);
    assert_eq!(elsewhere, vec![]);
    assert_eq!(
        moved(&name("Archive/2023/Q1"), &name("Archive"), &name("Old/Y")),
        name("Old/Y/2023/Q1")
    );
}

#[test]
fn evidence_compares_the_pairs_messages() {
    // Source UIDs 1, 2 paired with destination 101, 102; renamed on A.
    let pairs = entry(7, 8, &[1, 2]);
    let b = contents(8, 103, &[(101, 500, 10), (102, 600, 20)]);
    let cases = [
        (
            "all there, same size and date",
            contents(7, 3, &[(1, 500, 10), (2, 600, 20)]),
            Evidence::For,
        ),
        ("one expunged since", contents(7, 3, &[(2, 600, 20)]), Evidence::For),
        (
            "new mail besides",
            contents(7, 9, &[(1, 500, 10), (2, 600, 20), (8, 1, 1)]),
            Evidence::For,
        ),
        ("a size differs", contents(7, 3, &[(1, 500, 10), (2, 601, 20)]), Evidence::Against),
        ("a date differs", contents(7, 3, &[(1, 500, 11), (2, 600, 20)]), Evidence::Against),
        ("paired UIDs it never gave out", contents(7, 2, &[(1, 500, 10)]), Evidence::Against),
        ("another UIDVALIDITY", contents(9, 3, &[(1, 500, 10), (2, 600, 20)]), Evidence::Against),
        ("all expunged: nothing to go by", contents(7, 3, &[]), Evidence::Nothing),
    ];
    for (what, a, expected) in cases {
        assert_eq!(evidence(&pairs, A, &a, &b), expected, "{what}");
    }
    // Renamed on B: the destination UIDs are checked.
    let a = contents(7, 3, &[(1, 500, 10), (2, 600, 20)]);
    assert_eq!(evidence(&pairs, B, &b, &a), Evidence::For);
    assert_eq!(evidence(&entry(7, 8, &[]), A, &a, &b), Evidence::Nothing, "no pairs");
    assert_eq!(Evidence::Nothing.and(Evidence::For), Evidence::For);
    assert_eq!(Evidence::For.and(Evidence::Against), Evidence::Against);
}
