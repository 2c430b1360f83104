use crate::helpers::spawn_app;

#[actix_web::test]
async fn the_app_starts_on_port_0_and_answers() {
    let app = spawn_app().await;
    let res = app.client().get(app.url("/no/such/path/at/all")).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 404);
    assert!(app.port > 0);
}
