//! Where a request's verified peer is found: a [`PeerIdentity`] in its extensions, or the
//! [`VerifiedConnectInfo`] tonic copies from the connection into every request.

#[cfg(feature = "tonic")]
use std::net::SocketAddr;

use crate::peer::PeerIdentity;

/// What tonic puts into each request's extensions for a [`VerifiedStream`](crate::server::VerifiedStream) served with
/// `tonic::transport::Server::serve_with_incoming(server.incoming())` (feature `tonic`).
///
/// ```
/// fn caller<T>(request: &tonic::Request<T>) -> Option<String> {
///     request
///         .extensions()
///         .get::<mtls::peer::VerifiedConnectInfo>()
///         .and_then(|info| info.peer_identity())
///         .map(|peer| peer.to_string())
/// }
/// # assert_eq!(caller(&tonic::Request::new(())), None);
/// ```
#[cfg(feature = "tonic")]
#[derive(Debug, Clone)]
pub struct VerifiedConnectInfo {
    peer: Option<PeerIdentity>,
    remote_addr: SocketAddr,
}

#[cfg(feature = "tonic")]
impl VerifiedConnectInfo {
    pub(crate) fn new(peer: Option<PeerIdentity>, remote_addr: SocketAddr) -> Self {
        VerifiedConnectInfo { peer, remote_addr }
    }

    /// The client's verified identity (`None` only for an admitted anonymous client).
    ///
    /// # Examples
    ///
    /// ```
    /// use tonic::transport::server::Connected;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// # let uri: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # let connector = client.connector();
    /// # let connecting = tokio::spawn(async move { connector.connect(uri).await });
    /// let mut incoming = server.incoming();
    /// let stream = incoming.next().await.expect("a verified stream");
    /// let info = stream.connect_info(); // what tonic puts into each request's extensions
    /// assert_eq!(info.peer_identity().unwrap().to_string(), "spiffe://example.org/orders");
    /// # let _connection = connecting.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref()
    }

    /// The client's address.
    ///
    /// # Examples
    ///
    /// ```
    /// use tonic::transport::server::Connected;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let ca = mtls::dev::DevCa::new("test CA")?;
    /// # let server = mtls::Server::builder()
    /// #     .identity(ca.server("localhost")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .authorize(mtls::Authorizer::any_verified())
    /// #     .bind("127.0.0.1:0")
    /// #     .await?;
    /// # let client = mtls::Client::builder()
    /// #     .identity(ca.client("spiffe://example.org/orders")?.identity()?)
    /// #     .trust(ca.trust()?)
    /// #     .build()?;
    /// # let uri: http::Uri = format!("https://{}/", server.local_addr()).parse()?;
    /// # let connector = client.connector();
    /// # let connecting = tokio::spawn(async move { connector.connect(uri).await });
    /// let mut incoming = server.incoming();
    /// let stream = incoming.next().await.expect("a verified stream");
    /// assert!(stream.connect_info().remote_addr().ip().is_loopback());
    /// # let _connection = connecting.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }
}

/// The verified peer of a request, wherever the server that accepted it put it: a
/// [`PeerIdentity`] in the extensions ([`Server::serve`](crate::Server::serve)), else the
/// [`VerifiedConnectInfo`] tonic copies into every request of a stream served with
/// `serve_with_incoming` (feature `tonic`). Every check of a request's identity reads it here,
/// so a policy sees the same caller on both paths. Borrowed: nothing is cloned.
pub(crate) fn peer_of(extensions: &http::Extensions) -> Option<&PeerIdentity> {
    if let Some(peer) = extensions.get::<PeerIdentity>() {
        return Some(peer);
    }
    #[cfg(feature = "tonic")]
    if let Some(info) = extensions.get::<VerifiedConnectInfo>() {
        return info.peer_identity();
    }
    None
}
