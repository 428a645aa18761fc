package sightline.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;

/** Writer schemas by id, from the registry's Confluent-compatible API, fetched once each. */
final class Registry {
  private final String url;
  private final HttpClient http = HttpClient.newHttpClient();
  private final ObjectMapper json = new ObjectMapper();
  private final ConcurrentHashMap<Integer, GenericDatumReader<GenericRecord>> readers =
      new ConcurrentHashMap<>();

  Registry(String url) {
    this.url = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
  }

  /** A reader for the writer schema `id`; null when the registry does not know it. */
  GenericDatumReader<GenericRecord> reader(int id) {
    return readers.computeIfAbsent(id, this::fetch);
  }

  private GenericDatumReader<GenericRecord> fetch(int id) {
    try {
      HttpResponse<String> r =
          http.send(
              HttpRequest.newBuilder(URI.create(url + "/schemas/ids/" + id)).GET().build(),
              HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() != 200) {
        return null;
      }
      Schema schema = new Schema.Parser().parse(json.readTree(r.body()).get("schema").asText());
      return new GenericDatumReader<>(schema);
    } catch (Exception e) {
      throw new IllegalStateException("registry " + url + ": schema " + id + ": " + e, e);
    }
  }
}
