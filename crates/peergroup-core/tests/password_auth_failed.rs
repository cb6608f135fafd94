//! Authentication-failed events at a password authenticator, and
//! `PeerGroupResumePasswordAuthentication`: with a hold, a failure suspends password
//! authentication until the application resumes it; without one, failures are only reported.

use peergroup_core::events::{Event, EventFilter, EventKind};
use peergroup_core::identity::gmc::Role;
use peergroup_core::identity::hresult::*;
use peergroup_core::identity::PeerName;
use peergroup_core::properties::{
    GroupProperties, PEER_GROUP_GMC_AUTHENTICATION, PEER_GROUP_PASSWORD_AUTHENTICATION,
};

mod common;

use common::{member, next_event, online};

/// The next authentication-failed event that is not a refusal of the throttle (those come
/// whenever an attempt follows a wrong password within its wait, which the joiner then
/// waits out by itself).
async fn next_verdict(sub: &mut peergroup_core::EventSubscription) -> Event {
    loop {
        match next_event(sub).await {
            Event::AuthenticationFailed(hr) if hr == E_ACCESSDENIED => continue,
            other => return other,
        }
    }
}

fn password_group(creator: &PeerName, classifier: &str) -> GroupProperties {
    GroupProperties {
        classifier: classifier.into(),
        creator_peer_name: creator.to_string(),
        authentication_schemes: PEER_GROUP_GMC_AUTHENTICATION | PEER_GROUP_PASSWORD_AUTHENTICATION,
        group_password: Some("correct horse".into()),
        group_password_role: Role::Member,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_suspends_password_authentication_until_resumed() {
    let (ma, mb, mc) = (member("alice"), member("bob"), member("carol"));
    let (a, alice) = (&ma.pg, ma.id.clone());
    let (b, bob) = (&mb.pg, mb.id.clone());
    let (c, carol) = (&mc.pg, mc.id.clone());
    let group = a.create_group(password_group(&alice, "club")).unwrap();
    let other = a.create_group(password_group(&alice, "other")).unwrap();
    let group = online(group).await;
    let invitation = group.create_password_invitation().unwrap();
    let mut failures = group
        .subscribe(EventFilter::kinds(&[EventKind::AuthenticationFailed]))
        .unwrap();
    let hold = group.hold_password_authentication().unwrap();
    let foreign = other.hold_password_authentication().unwrap();

    // Nothing to resume yet; a hold of another group is a bad argument.
    let code = |r: peergroup_core::Result<()>| r.unwrap_err().hresult();
    assert_eq!(
        code(group.resume_password_authentication(&hold)),
        PEER_E_NOT_FOUND
    );
    assert_eq!(
        code(group.resume_password_authentication(&foreign)),
        E_INVALIDARG
    );

    // A wrong password: the joiner is refused, the authenticator reports it and suspends.
    let wrong = b.password_join(Some(&bob), &invitation, "battery").await;
    assert_eq!(wrong.err().unwrap().hresult() as u32, 0x8007_0056);
    assert_eq!(
        next_verdict(&mut failures).await,
        Event::AuthenticationFailed(0x8007_0056_u32 as i32)
    );
    assert!(group.password_authentication_suspended().unwrap());

    // Suspended: even the right password is refused, and nothing is stored.
    let refused = b
        .password_join(Some(&bob), &invitation, "correct horse")
        .await;
    assert_eq!(
        refused.err().unwrap().hresult(),
        PEER_E_NOT_AUTHORIZED,
        "the authenticator closed with NotAuthorized"
    );
    assert!(b.identities().groups(&bob).unwrap().is_empty());

    // Resumed: the right password joins.
    group.resume_password_authentication(&hold).unwrap();
    assert!(!group.password_authentication_suspended().unwrap());
    let (joined, already) = b
        .password_join(Some(&bob), &invitation, "correct horse")
        .await
        .unwrap();
    assert!(!already);
    joined.close().await.unwrap();

    // Without holds a failure is reported but suspends nothing.
    drop(hold);
    let wrong = c.password_join(Some(&carol), &invitation, "battery").await;
    assert_eq!(wrong.err().unwrap().hresult() as u32, 0x8007_0056);
    assert_eq!(
        next_verdict(&mut failures).await,
        Event::AuthenticationFailed(0x8007_0056_u32 as i32)
    );
    assert!(!group.password_authentication_suspended().unwrap());
    let (carol_group, _) = c
        .password_join(Some(&carol), &invitation, "correct horse")
        .await
        .unwrap();
    carol_group.close().await.unwrap();
    drop(foreign);
    other.close().await.unwrap();
    group.close().await.unwrap();
}

/// Wrong passwords slow the next attempts down: one made within the wait is refused before
/// any exchange (reported as `E_ACCESSDENIED`), the joiner waits a short wait out by itself,
/// and the wait doubles with each wrong password; the right one still joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_make_the_next_attempt_wait() {
    let (ma, mb) = (member("alice"), member("bob"));
    let (a, alice) = (&ma.pg, ma.id.clone());
    let (b, bob) = (&mb.pg, mb.id.clone());
    let group = online(a.create_group(password_group(&alice, "slow")).unwrap()).await;
    let invitation = group.create_password_invitation().unwrap();
    let mut failures = group
        .subscribe(EventFilter::kinds(&[EventKind::AuthenticationFailed]))
        .unwrap();
    let invalid = Event::AuthenticationFailed(HRESULT_INVALID_PASSWORD);
    let throttled = Event::AuthenticationFailed(E_ACCESSDENIED);

    let wrong = b.password_join(Some(&bob), &invitation, "battery").await;
    assert_eq!(wrong.err().unwrap().hresult(), HRESULT_INVALID_PASSWORD);
    assert_eq!(next_event(&mut failures).await, invalid);
    // At once again: refused unheard, waited out (1 s), then heard and wrong.
    let started = std::time::Instant::now();
    let wrong = b.password_join(Some(&bob), &invitation, "staple").await;
    assert_eq!(wrong.err().unwrap().hresult(), HRESULT_INVALID_PASSWORD);
    assert!(started.elapsed() >= peergroup_core::throttle::FIRST_WAIT);
    assert_eq!(next_event(&mut failures).await, throttled);
    assert_eq!(next_event(&mut failures).await, invalid);
    // The right one: the wait has doubled (2 s); then it joins.
    let started = std::time::Instant::now();
    let (joined, _) = b
        .password_join(Some(&bob), &invitation, "correct horse")
        .await
        .unwrap();
    assert!(started.elapsed() >= 2 * peergroup_core::throttle::FIRST_WAIT);
    assert_eq!(next_event(&mut failures).await, throttled);
    joined.close().await.unwrap();
    group.close().await.unwrap();
}
